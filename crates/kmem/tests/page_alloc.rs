//! Integration tests of the buddy allocator: properties against a reference model, the
//! determinism case, zones and HighMem, watermarks, bad input, and threads.

mod common;
use common::*;

use std::collections::BTreeMap;

use kmem::arch::Arch;
use kmem::mmzone::{ZoneType, WMARK_MIN};
use kmem::{GfpFlags, Order, PagePtr, Pfn};
use proptest::prelude::*;

fn buddy(m: &M) -> String {
    proc(m, "/proc/buddyinfo")
}

fn zone_of(m: &M, pfn: Pfn) -> ZoneType {
    m.arch()
        .zones()
        .iter()
        .copied()
        .find(|z| m.zone(*z).geo.contains(pfn))
        .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { zone_gfp: u8, order: u32 },
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 0u32..=10).prop_map(|(zone_gfp, order)| Op::Alloc { zone_gfp, order }),
        2 => any::<usize>().prop_map(Op::Free),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random alloc/free of orders 0–10 across zones against a model of live blocks: blocks
    /// are aligned to their order, never overlap, lie in a zone the GFP flags allow; the
    /// invariant checker passes after every step; freeing everything restores the free areas.
    #[test]
    fn random_alloc_free_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let m = boot(Arch::X86_64, 64 << 20, 2);
        let initial = buddy(&m);
        let mut live: BTreeMap<u64, (u32, PagePtr)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Alloc { zone_gfp, order } => {
                    let gfp = [GfpFlags::GFP_DMA, GfpFlags::GFP_DMA32, GfpFlags::GFP_KERNEL][zone_gfp as usize]
                        | GfpFlags::__GFP_NOWARN;
                    if let Some(p) = m.alloc_pages(gfp, Order::new(order)) {
                        let pfn = m.page_to_pfn(p).as_u64();
                        prop_assert_eq!(pfn & ((1 << order) - 1), 0, "aligned");
                        if let Some((&s, &(o, _))) = live.range(..=pfn).next_back() {
                            prop_assert!(s + (1 << o) <= pfn, "overlaps block below");
                        }
                        if let Some((&s, _)) = live.range(pfn..).next() {
                            prop_assert!(pfn + (1 << order) <= s, "overlaps block above");
                        }
                        let z = zone_of(&m, Pfn::new(pfn));
                        if zone_gfp == 0 {
                            prop_assert_eq!(z, ZoneType::Dma);
                        }
                        live.insert(pfn, (order, p));
                    }
                }
                Op::Free(i) => {
                    if !live.is_empty() {
                        let k = *live.keys().nth(i % live.len()).unwrap();
                        let (o, p) = live.remove(&k).unwrap();
                        m.__free_pages(p, Order::new(o));
                    }
                }
            }
            m.check_invariants().map_err(TestCaseError::fail)?;
        }
        for (_, (o, p)) in std::mem::take(&mut live) {
            m.__free_pages(p, Order::new(o));
        }
        m.drain_local_pages();
        m.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(initial, buddy(&m));
        prop_assert_eq!(m.bug_count(), 0);
    }
}

/// From a zone holding a single order-10 block, one order-0 allocation leaves exactly one
/// free block at each order 0–9 (the textbook split).
#[test]
fn order0_from_single_max_block_splits_once_per_order() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    // DMA after boot holds 1×order 8, 1×order 9 and 3×order 10 (first MiB reserved).
    let counts = m.free_area_counts(ZoneType::Dma);
    assert_eq!(counts, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3]);
    // Movable, so every request is served from the Movable lists smallest-first (an Unmovable
    // request would claim a whole order-10 block instead, as __rmqueue_claim does).
    let dma = GfpFlags::GFP_DMA | GfpFlags::__GFP_MOVABLE;
    let _a = m.alloc_pages(dma, Order::new(10)).unwrap();
    let _b = m.alloc_pages(dma, Order::new(10)).unwrap();
    let _c = m.alloc_pages(dma, Order::new(9)).unwrap();
    let _d = m.alloc_pages(dma, Order::new(8)).unwrap();
    assert_eq!(
        m.free_area_counts(ZoneType::Dma),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    // DMA's pcp batch is 1 (zone_batchsize of 3840 managed pages), so exactly one page moves.
    let p = m.alloc_pages(dma, Order::ZERO).unwrap();
    assert_eq!(
        m.free_area_counts(ZoneType::Dma),
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    );
    m.__free_pages(p, Order::ZERO);
    m.drain_local_pages();
    assert_eq!(
        m.free_area_counts(ZoneType::Dma),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    m.check_invariants().unwrap();
}

/// GFP_KERNEL never returns HighMem on i386; GFP_HIGHUSER prefers it; HighMem pages have no
/// direct-map address.
#[test]
fn i386_highmem_placement() {
    let m = boot(Arch::I386, 2 << 30, 2);
    let b = buddy(&m);
    for z in ["DMA", "Normal", "HighMem"] {
        assert!(b.contains(&format!("zone {z:>8}")), "{b}");
    }
    let mut pages = Vec::new();
    for _ in 0..2000 {
        let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).unwrap();
        assert!(m.page_to_pfn(p).phys().as_u64() < 896 << 20);
        assert!(m.page_address(p).is_some());
        pages.push((p, Order::ZERO));
    }
    for _ in 0..200 {
        let p = m
            .alloc_pages(GfpFlags::GFP_HIGHUSER, Order::new(1))
            .unwrap();
        assert_eq!(zone_of(&m, m.page_to_pfn(p)), ZoneType::HighMem);
        assert!(
            m.page_address(p).is_none(),
            "HighMem has no direct-map address"
        );
        pages.push((p, Order::new(1)));
    }
    // __get_free_pages never gives HighMem even when asked.
    let a = m
        .__get_free_pages(GfpFlags::GFP_HIGHUSER, Order::ZERO)
        .unwrap();
    assert!(m.virt_to_phys(a).unwrap().as_u64() < 896 << 20);
    m.free_pages(a, Order::ZERO);
    for (p, o) in pages {
        m.__free_pages(p, o);
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// Watermarks: GFP_KERNEL stops at the min watermark (warning printed), GFP_ATOMIC may go
/// further, __GFP_NOWARN suppresses the report.
#[test]
fn watermark_boundaries() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, Order::ZERO) {
        held.push(p);
    }
    assert_eq!(m.warn_count(), 0, "__GFP_NOWARN is silent");
    let dma32 = m.zone(ZoneType::Dma32);
    let min = dma32.wmark(WMARK_MIN);
    let free = dma32.stats.free_pages();
    let batch = dma32.pcp_batch;
    assert!(
        free <= min && free + batch >= min,
        "free {free} min {min} batch {batch}"
    );
    assert!(m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).is_none());
    assert_eq!(m.warn_count(), 1);
    let log = m.platform().take_captured();
    assert!(
        log.contains("page allocation failure: order:0, mode:0xcc0(GFP_KERNEL)"),
        "{log}"
    );
    // GFP_ATOMIC dips below min (to 3/8 of it).
    let mut atomic = 0;
    while let Some(p) = m.alloc_pages(GfpFlags::GFP_ATOMIC | GfpFlags::__GFP_NOWARN, Order::ZERO) {
        held.push(p);
        atomic += 1;
    }
    assert!(atomic > 0, "GFP_ATOMIC must get below the min watermark");
    let free = m.zone(ZoneType::Dma32).stats.free_pages();
    assert!(free < min / 2 + batch, "free {free}, min {min}");
    for p in held {
        m.__free_pages(p, Order::ZERO);
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
}

/// Wrong order, double free, reserved page, tail page, foreign address: each is reported as
/// bad page state, changes nothing, and the allocator keeps working.
#[test]
fn bad_frees_are_reported_and_harmless() {
    let m = boot(Arch::X86_64, 128 << 20, 2);
    let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(5)).unwrap();
    let snapshot = buddy(&m);

    m.__free_pages(p, Order::new(3));
    assert_eq!(m.bug_count(), 1);
    assert_eq!(m.report_count(), 1);
    let log = m.platform().take_captured();
    assert!(log.contains("BUG: Bad page state in process"), "{log}");
    assert!(
        log.contains("freeing order 3 of a block allocated with order 5"),
        "{log}"
    );
    assert!(log.contains("page dumped because:"), "{log}");
    assert_eq!(snapshot, buddy(&m), "wrong-order free changes nothing");

    m.__free_pages(p, Order::new(5));
    m.__free_pages(p, Order::new(5));
    assert_eq!(m.bug_count(), 2);
    assert!(m
        .platform()
        .take_captured()
        .contains("page_ref_count(page) == 0"));

    // A tail page of a compound block.
    let c = m
        .alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_COMP, Order::new(2))
        .unwrap();
    let tail = m.pfn_to_page(m.page_to_pfn(c) + 1).unwrap();
    m.__free_pages(tail, Order::ZERO);
    assert_eq!(m.bug_count(), 3);
    m.__free_pages(c, Order::new(2));

    // A reserved page (the kernel image at 16 MiB) and an address outside memory.
    let reserved = m.pfn_to_page(Pfn::new(0x1000)).unwrap();
    assert!(m.page_ref(reserved).unwrap().is_reserved());
    m.__free_pages(reserved, Order::ZERO);
    assert_eq!(m.bug_count(), 4);
    m.free_pages(kmem::VirtAddr::new(0x1000), Order::ZERO);
    assert_eq!(m.bug_count(), 5);
    let log = m.platform().take_captured();
    assert!(log.contains("PAGE_FLAGS_CHECK_AT_FREE"), "{log}");
    assert!(log.contains("has no struct page"), "{log}");

    m.drain_local_pages();
    m.check_invariants().unwrap();
    let q = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(5)).unwrap();
    m.__free_pages(q, Order::new(5));
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 5);
}

/// Order above MAX_PAGE_ORDER warns and fails; compound pages, split_page and
/// alloc_pages_exact behave as in Linux.
#[test]
fn api_edges() {
    let m = boot(Arch::X86_64, 128 << 20, 2);
    assert!(m.check_order(11, GfpFlags::GFP_KERNEL).is_none());
    assert_eq!(m.warn_count(), 1);
    assert!(m.platform().take_captured().contains("WARNING: CPU:"));
    let initial = buddy(&m);

    let used = m.pages_in_use();
    let c = m
        .alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_COMP, Order::new(3))
        .unwrap();
    assert_eq!(m.pages_in_use(), used + 8);
    assert!(m.page_ref(c).unwrap().is_head());
    assert_eq!(m.page_ref(c).unwrap().compound_order(), Order::new(3));
    let fifth = m.pfn_to_page(m.page_to_pfn(c) + 5).unwrap();
    assert_eq!(m.page_ref(fifth).unwrap().compound_head(), c);
    m.__free_pages(c, Order::new(3));
    assert_eq!(m.pages_in_use(), used);

    let z = m.get_zeroed_page(GfpFlags::GFP_KERNEL).unwrap();
    // SAFETY: a page we own, through the real direct map.
    let bytes = unsafe { std::slice::from_raw_parts(z.as_ptr::<u8>(), 4096) };
    assert!(bytes.iter().all(|b| *b == 0));
    m.free_page(z);

    let e = m.alloc_pages_exact(5 * 4096, GfpFlags::GFP_KERNEL).unwrap();
    // SAFETY: the 5 pages are ours.
    unsafe { std::ptr::write_bytes(e.as_ptr::<u8>(), 0xab, 5 * 4096) };
    m.free_pages_exact(e, 5 * 4096);

    let g = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(2)).unwrap();
    m.split_page(g, Order::new(2));
    for i in 0..4 {
        m.__free_pages(
            m.pfn_to_page(m.page_to_pfn(g) + i as u64).unwrap(),
            Order::ZERO,
        );
    }
    m.drain_local_pages();
    assert_eq!(initial, buddy(&m));
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// Threads as CPUs: random work on several threads, each exiting (its CPU goes offline and
/// its per-CPU lists drain); afterwards the free areas are as at boot.
#[test]
fn threads_stress_then_invariants() {
    let m = std::sync::Arc::new(boot(Arch::X86_64, 256 << 20, 4));
    let initial = buddy(&m);
    // Plain threads joined with pthread_join: join returns after the thread's TLS destructors
    // ran, i.e. after its CPU went offline and its per-CPU lists were drained.
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut rng = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut live: Vec<(PagePtr, Order)> = Vec::new();
                for _ in 0..20_000 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if live.len() < 64 && rng % 3 != 0 {
                        let o = Order::new(((rng >> 8) % 5) as u32);
                        let gfp = if rng & 0x100 != 0 {
                            GfpFlags::GFP_KERNEL
                        } else {
                            GfpFlags::GFP_USER | GfpFlags::__GFP_MOVABLE
                        };
                        if let Some(p) = m.alloc_pages(gfp | GfpFlags::__GFP_NOWARN, o) {
                            live.push((p, o));
                        }
                    } else if let Some((p, o)) = live.pop() {
                        m.__free_pages(p, o);
                    }
                }
                for (p, o) in live {
                    m.__free_pages(p, o);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
    assert_eq!(initial, buddy(&m));
    assert_eq!(m.bug_count(), 0);
}

/// `free_pages_exact` of an address that is no page of the machine stops at the first bad
/// page, as Linux does (`free_page` → `VM_BUG_ON(!virt_addr_valid)`): one report, not one
/// per page — with size -1 that was 2^52 reports buffered until the host ran out of memory.
#[test]
fn free_pages_exact_stops_at_the_first_bad_page() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let free0 = m.nr_free_pages();
    let b = m.bug_count();
    m.free_pages_exact(kmem::VirtAddr::new(0x1234), 1000 * 4096);
    assert_eq!(m.bug_count(), b + 1, "one report for 1000 bad pages");
    m.free_pages_exact(kmem::VirtAddr::new(0x1234), usize::MAX);
    assert_eq!(m.bug_count(), b + 2);
    // A real block is still freed page by page.
    let e = m.alloc_pages_exact(3 * 4096, GfpFlags::GFP_KERNEL).unwrap();
    m.free_pages_exact(e, 3 * 4096);
    assert_eq!(m.bug_count(), b + 2);
    m.drain_local_pages();
    assert_eq!(m.nr_free_pages(), free0);
    m.check_invariants().unwrap();
}

/// The wrong-order free check at every order boundary, in both directions: an order too
/// small would leave the rest of the block allocated; an order too large would free live
/// neighbours. Either is reported and changes nothing.
#[test]
fn wrong_order_frees_in_both_directions_at_every_order() {
    let m = boot(Arch::X86_64, 128 << 20, 2);
    let mut bugs = m.bug_count();
    for order in 0..=kmem::addr::MAX_PAGE_ORDER {
        let p = m
            .alloc_pages(GfpFlags::GFP_KERNEL, Order::new(order))
            .unwrap();
        m.drain_local_pages();
        let snapshot = buddy(&m);
        let mut wrong = vec![];
        if order > 0 {
            wrong.push(order - 1);
        }
        if order < kmem::addr::MAX_PAGE_ORDER {
            wrong.push(order + 1);
        }
        for w in wrong {
            m.platform().take_captured();
            m.__free_pages(p, Order::new(w));
            bugs += 1;
            assert_eq!(m.bug_count(), bugs, "order {order} freed as {w}");
            let log = m.platform().take_captured();
            assert!(
                log.contains(&format!(
                    "freeing order {w} of a block allocated with order {order}"
                )),
                "{log}"
            );
            m.drain_local_pages();
            assert_eq!(
                snapshot,
                buddy(&m),
                "order {order} freed as {w} changed the lists"
            );
        }
        m.__free_pages(p, Order::new(order));
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
}

/// The free blocks of a zone as (pfn, order, migratetype).
fn free_blocks(m: &M, z: ZoneType) -> Vec<(u64, u32, kmem::mmzone::MigrateType)> {
    let mut v = vec![];
    m.for_each_free_block(z, |pfn, o, mt| v.push((pfn.as_u64(), o.as_u32(), mt)));
    v
}

/// mm/page_alloc.c `__free_one_page`: at pageblock order and above, a block merges with its
/// free buddy of another migratetype when both types are mergeable (`migratetype_is_
/// mergeable`: below MIGRATE_PCPTYPES), taking the freed block's type. Set up in ZONE_DMA:
/// an order-10 block whose halves are an UNMOVABLE and a MOVABLE pageblock, both freed.
#[test]
fn free_merges_with_a_buddy_of_another_mergeable_migratetype() {
    use kmem::mmzone::{MigrateType, PAGEBLOCK_ORDER};
    let m = boot(Arch::X86_64, 64 << 20, 1);
    m.set_min_free_kbytes(0);
    let dma = ZoneType::Dma;
    let unmovable = GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA | GfpFlags::__GFP_NOWARN;
    let movable = GfpFlags::GFP_DMA | GfpFlags::__GFP_MOVABLE | GfpFlags::__GFP_NOWARN;
    let mt_of = |pfn: u64| m.zone(dma).pageblock_migratetype(Pfn::new(pfn));
    // An UNMOVABLE order-10 block: both its pageblocks UNMOVABLE.
    let u = m
        .alloc_pages(unmovable, Order::new(10))
        .expect("an order-10 DMA block");
    let upfn = m.page_to_pfn(u).as_u64();
    let half = 1u64 << PAGEBLOCK_ORDER;
    assert_eq!(zone_of(&m, Pfn::new(upfn)), dma);
    assert_eq!(
        (mt_of(upfn), mt_of(upfn + half)),
        (MigrateType::Unmovable, MigrateType::Unmovable)
    );
    // Hold every other block of order >= pageblock order, so the one freed below is the only
    // candidate for the movable allocation's fallback.
    let mut held = vec![];
    while free_blocks(&m, dma).iter().any(|b| b.1 >= PAGEBLOCK_ORDER) {
        let p = m
            .alloc_pages(unmovable, Order::new(PAGEBLOCK_ORDER))
            .expect("DMA blocks of pageblock order can be taken");
        held.push(p);
    }
    // Free the upper half page by page: one free UNMOVABLE order-9 block.
    m.split_page(u, Order::new(10));
    for i in half..2 * half {
        m.__free_pages(m.pfn_to_page(Pfn::new(upfn + i)).unwrap(), Order::ZERO);
    }
    m.drain_local_pages();
    assert!(free_blocks(&m, dma).contains(&(upfn + half, PAGEBLOCK_ORDER, MigrateType::Unmovable)));
    // A movable allocation finds no movable block and claims it: now MOVABLE.
    let b = m.alloc_pages(movable, Order::new(PAGEBLOCK_ORDER)).unwrap();
    assert_eq!(m.page_to_pfn(b).as_u64(), upfn + half);
    assert_eq!(
        (mt_of(upfn), mt_of(upfn + half)),
        (MigrateType::Unmovable, MigrateType::Movable)
    );
    // Free the lower (UNMOVABLE) half, then the MOVABLE buddy: one order-10 block.
    for i in 0..half {
        m.__free_pages(m.pfn_to_page(Pfn::new(upfn + i)).unwrap(), Order::ZERO);
    }
    m.drain_local_pages();
    assert!(free_blocks(&m, dma).contains(&(upfn, PAGEBLOCK_ORDER, MigrateType::Unmovable)));
    m.__free_pages(b, Order::new(PAGEBLOCK_ORDER));
    m.drain_local_pages();
    let blocks = free_blocks(&m, dma);
    assert!(
        blocks.contains(&(upfn, 10, MigrateType::Movable)),
        "the halves did not merge: {:?}",
        blocks
            .iter()
            .filter(|b| b.0 >= upfn && b.0 < upfn + 2 * half)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (mt_of(upfn), mt_of(upfn + half)),
        (MigrateType::Movable, MigrateType::Movable)
    );
    for p in held {
        m.__free_pages(p, Order::new(PAGEBLOCK_ORDER));
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

// ------------------------------------------------------------------ alloc_pages_bulk (issue 14)

/// Pages of a bulk array, checked distinct and allocated (one reference each).
fn assert_distinct_allocated(m: &M, pages: &[Option<PagePtr>]) {
    let mut seen = std::collections::BTreeSet::new();
    for p in pages.iter().flatten() {
        assert!(
            seen.insert(m.page_to_pfn(*p).as_u64()),
            "page handed out twice"
        );
        let r = m.page_ref(*p).unwrap();
        assert_eq!(r.refcount(), 1);
        assert!(!r.is_buddy());
    }
}

/// Linux's semantics: every empty slot is filled, the return value counts the populated
/// slots from the start, and the counters move by the pages allocated.
#[test]
fn alloc_pages_bulk_fills_empty_array() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    m.drain_local_pages();
    let initial = buddy(&m);
    let in_use = m.pages_in_use();
    let hits = m.zone_alloc_count(ZoneType::Dma32) + m.zone_alloc_count(ZoneType::Normal);
    let mut pages = [None; 100];
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut pages), 100);
    assert!(pages.iter().all(Option::is_some));
    assert_distinct_allocated(&m, &pages);
    assert_eq!(m.pages_in_use(), in_use + 100);
    let hits2 = m.zone_alloc_count(ZoneType::Dma32) + m.zone_alloc_count(ZoneType::Normal);
    assert_eq!(hits2, hits + 100, "numa_hit counts every page");
    m.check_invariants().unwrap();
    for p in pages.iter().flatten() {
        m.__free_pages(*p, Order::ZERO);
    }
    assert_eq!(m.pages_in_use(), in_use);
    m.drain_local_pages();
    m.check_invariants().unwrap();
    assert_eq!(initial, buddy(&m));
    assert_eq!(m.bug_count(), 0);
}

/// Populated slots are kept as they are (including ones after a hole), a full array
/// allocates nothing, one hole takes the single-page path, and an empty slice returns 0.
#[test]
fn alloc_pages_bulk_keeps_populated_slots() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let mut pages: [Option<PagePtr>; 16] = [None; 16];
    for i in [0usize, 1, 5, 15] {
        pages[i] = m.alloc_page(GfpFlags::GFP_KERNEL);
    }
    let before = pages;
    let in_use = m.pages_in_use();
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut pages), 16);
    for i in [0usize, 1, 5, 15] {
        assert_eq!(pages[i], before[i], "slot {i} was replaced");
    }
    assert_distinct_allocated(&m, &pages);
    assert_eq!(m.pages_in_use(), in_use + 12);
    // Full: nothing to do.
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut pages), 16);
    assert_eq!(m.pages_in_use(), in_use + 12);
    // One hole: the single-page failover fills it.
    let p = pages[9].take().unwrap();
    m.__free_pages(p, Order::ZERO);
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut pages), 16);
    assert!(pages[9].is_some());
    assert_distinct_allocated(&m, &pages);
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut []), 0);
    for p in pages.iter().flatten() {
        m.__free_pages(*p, Order::ZERO);
    }
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// Zone modifiers are honoured (DMA pages from ZONE_DMA), and asking for more than the zone
/// has fills a prefix and reports how far it got, without a panic or a lost page.
#[test]
fn alloc_pages_bulk_zone_and_exhaustion() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let mut dma = vec![None; 64];
    let gfp = GfpFlags::GFP_DMA | GfpFlags::__GFP_NOWARN;
    assert_eq!(m.alloc_pages_bulk(gfp, &mut dma), 64);
    for p in dma.iter().flatten() {
        assert_eq!(zone_of(&m, m.page_to_pfn(*p)), ZoneType::Dma);
    }
    assert_distinct_allocated(&m, &dma);
    // 64 MiB: far fewer than 32768 free pages. No zone stays above its low watermark plus
    // the request, so Linux's bulk allocator falls back to one page (`failed:` path).
    let mut all = vec![None; 32768];
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    assert_eq!(m.alloc_pages_bulk(gfp, &mut all), 1);
    assert!(all[0].is_some() && all[1..].iter().all(Option::is_none));
    // Repeated bulk calls of 512 take the memory in chunks until a call cannot be served in
    // bulk; then single pages, until the allocator fails without filling the slot.
    let mut n = 1;
    loop {
        let end = (n + 512).min(all.len());
        let got = m.alloc_pages_bulk(gfp, &mut all[..end]);
        assert!(all[..got].iter().all(Option::is_some));
        assert!(all[got..].iter().all(Option::is_none));
        if got == n {
            break;
        }
        n = got;
    }
    assert!(n > 8000 && n < 32768, "got {n}");
    assert_distinct_allocated(&m, &all);
    m.check_invariants().unwrap();
    for p in all.iter().chain(dma.iter()).flatten() {
        m.__free_pages(*p, Order::ZERO);
    }
    m.drain_local_pages();
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Model: arrays with random populated slots, interleaved with single allocations and
    /// frees; populated slots never change, no page is handed out twice or lost, and freeing
    /// everything restores the free areas.
    #[test]
    fn alloc_pages_bulk_model(steps in proptest::collection::vec(
        (proptest::collection::vec(any::<bool>(), 0..40), 0usize..8, any::<bool>()), 1..12)) {
        let m = boot(Arch::X86_64, 64 << 20, 2);
        m.drain_local_pages();
        let initial = buddy(&m);
        let mut live: Vec<PagePtr> = Vec::new();
        for (mask, frees, drain) in steps {
            let mut arr: Vec<Option<PagePtr>> = mask
                .iter()
                .map(|&full| if full { m.alloc_page(GfpFlags::GFP_KERNEL) } else { None })
                .collect();
            let kept = arr.clone();
            let n = m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut arr);
            prop_assert_eq!(n, arr.len());
            for (a, k) in arr.iter().zip(&kept) {
                if k.is_some() {
                    prop_assert_eq!(a, k);
                }
            }
            live.extend(arr.iter().flatten());
            let mut pfns: Vec<u64> = live.iter().map(|p| m.page_to_pfn(*p).as_u64()).collect();
            pfns.sort_unstable();
            pfns.dedup();
            prop_assert_eq!(pfns.len(), live.len(), "a page was handed out twice");
            for _ in 0..frees.min(live.len()) {
                let p = live.swap_remove(frees % live.len());
                m.__free_pages(p, Order::ZERO);
            }
            if drain {
                m.drain_local_pages();
            }
            m.check_invariants().map_err(TestCaseError::fail)?;
        }
        for p in live.drain(..) {
            m.__free_pages(p, Order::ZERO);
        }
        m.drain_local_pages();
        prop_assert_eq!(initial, buddy(&m));
        prop_assert_eq!(m.bug_count(), 0);
    }
}

/// `drain_all_pages` empties another CPU's page lists while that CPU keeps allocating and
/// freeing on them: the owner uses its lists without a lock while no drainer is pending
/// (mmzone.rs `PcpSlot`), so the drainer's announcement, barrier and wait are what keep the
/// two apart. No page may be lost or handed out twice, and the lists end consistent.
#[test]
fn drain_all_pages_races_a_busy_cpu() {
    let m = boot(Arch::X86_64, 128 << 20, 2);
    let free0 = settle(&m);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let (m, stop) = (&m, &stop);
        s.spawn(move || {
            let mut held: Vec<(PagePtr, Order)> = Vec::new();
            let mut pfns = std::collections::HashSet::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 20_000 {
                let order = Order::new(i % 4);
                if let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL, order) {
                    let pfn = m.page_to_pfn(p).as_u64();
                    assert!(pfns.insert(pfn), "pfn {pfn:#x} handed out twice");
                    held.push((p, order));
                }
                if held.len() > 64 || i.is_multiple_of(3) {
                    let k = (i as usize * 7) % held.len().max(1);
                    if k < held.len() {
                        let (p, o) = held.swap_remove(k);
                        pfns.remove(&m.page_to_pfn(p).as_u64());
                        m.__free_pages(p, o);
                    }
                }
                i += 1;
            }
            for (p, o) in held {
                m.__free_pages(p, o);
            }
            m.drain_local_pages();
        });
        for _ in 0..20_000 {
            m.drain_all_pages();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    m.drain_all_pages();
    assert_eq!(settle(&m), free0);
    assert_eq!(m.check_invariants(), Ok(()));
}
